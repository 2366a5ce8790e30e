output "bucket_name" {
  description = "Images bucket (S3_BUCKET of the images function)."
  value       = aws_s3_bucket.images.id
}

output "bucket_arn" {
  description = "Images bucket ARN."
  value       = aws_s3_bucket.images.arn
}

output "cdn_domain" {
  description = "Public name images are served from."
  value       = var.images_domain
}

output "distribution_id" {
  description = "CloudFront distribution (for invalidations)."
  value       = aws_cloudfront_distribution.images.id
}
