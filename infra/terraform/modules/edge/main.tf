# ACM certificates and Route53 records.
#
# - The API certificate lives in the cluster's region: the ALB Ingress references its ARN
#   (alb.ingress.kubernetes.io/certificate-arn, written into infra/k8s by the overlay).
# - CloudFront only accepts certificates from us-east-1: the images certificate is created through
#   the aws.us_east_1 provider alias the env roots pass in.
# - The ALB itself is created by the AWS Load Balancer Controller from the Ingress, with a fixed name
#   (var.alb_name); its alias record is created on the second apply, once it exists.

terraform {
  required_providers {
    aws = {
      source                = "hashicorp/aws"
      configuration_aliases = [aws.us_east_1]
    }
  }
}

data "aws_route53_zone" "this" {
  name         = var.zone_name
  private_zone = false
}

resource "aws_acm_certificate" "api" {
  domain_name       = var.api_domain
  validation_method = "DNS"
  tags              = merge(var.tags, { Name = var.api_domain })
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_acm_certificate" "images" {
  provider          = aws.us_east_1
  domain_name       = var.images_domain
  validation_method = "DNS"
  tags              = merge(var.tags, { Name = var.images_domain })
  lifecycle {
    create_before_destroy = true
  }
}

# Static keys (one record per certificate, each certificate has exactly one name): for_each must
# be known at plan time, and domain_validation_options is not until the certificate exists.
resource "aws_route53_record" "validation" {
  for_each = {
    api    = aws_acm_certificate.api
    images = aws_acm_certificate.images
  }
  zone_id         = data.aws_route53_zone.this.zone_id
  name            = one(each.value.domain_validation_options).resource_record_name
  type            = one(each.value.domain_validation_options).resource_record_type
  records         = [one(each.value.domain_validation_options).resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "api" {
  certificate_arn         = aws_acm_certificate.api.arn
  validation_record_fqdns = [aws_route53_record.validation["api"].fqdn]
}

resource "aws_acm_certificate_validation" "images" {
  provider                = aws.us_east_1
  certificate_arn         = aws_acm_certificate.images.arn
  validation_record_fqdns = [aws_route53_record.validation["images"].fqdn]
}

data "aws_lb" "api" {
  count = var.api_record_enabled ? 1 : 0
  name  = var.alb_name
}

resource "aws_route53_record" "api" {
  count   = var.api_record_enabled ? 1 : 0
  zone_id = data.aws_route53_zone.this.zone_id
  name    = var.api_domain
  type    = "A"
  alias {
    name                   = data.aws_lb.api[0].dns_name
    zone_id                = data.aws_lb.api[0].zone_id
    evaluate_target_health = true
  }
}
