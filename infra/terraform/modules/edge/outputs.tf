output "zone_id" {
  description = "Route53 zone ID."
  value       = data.aws_route53_zone.this.zone_id
}

output "api_certificate_arn" {
  description = "Regional ACM certificate for the ALB Ingress."
  value       = aws_acm_certificate_validation.api.certificate_arn
}

output "images_certificate_arn" {
  description = "us-east-1 ACM certificate for CloudFront."
  value       = aws_acm_certificate_validation.images.certificate_arn
}
