# The images bucket: private, versioned, encrypted, never public. Browsers upload with presigned
# PUT URLs from the images function (CORS limited to the app's origins) and read through
# CloudFront, which signs its requests to S3 with origin access control (OAC); the bucket policy
# admits exactly that distribution.

resource "aws_s3_bucket" "images" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is not wanted: images are re-uploadable user content, versioning covers accidental deletes.
  #checkov:skip=CKV_AWS_18:Server access logging is replaced by CloudTrail data events at the account level (README); a log bucket per env would need its own log bucket.
  #checkov:skip=CKV2_AWS_62:No S3 event consumers: the images function confirms uploads itself.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256) on purpose: CloudFront OAC reads SSE-S3 objects without a KMS key policy, and a CMK adds per-request KMS cost on every image view.
  bucket = var.bucket_name
  tags   = merge(var.tags, { Name = var.bucket_name })
}

resource "aws_s3_bucket_public_access_block" "images" {
  bucket                  = aws_s3_bucket.images.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "images" {
  bucket = aws_s3_bucket.images.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "images" {
  bucket = aws_s3_bucket.images.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "images" {
  bucket = aws_s3_bucket.images.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "images" {
  bucket = aws_s3_bucket.images.id

  rule {
    id     = "abort-incomplete-multipart"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  # Presigned PUTs write to pending/{channel}/{uuid}.{ext}; the images function's callback copies a
  # checked upload to {channel}/{uuid}.{ext} and deletes the pending object, so whatever is still
  # under pending/ was never confirmed (or was refused: too large, wrong type). The rule with the
  # shorter expiry wins where two overlap, so refused and replaced versions go after a day too.
  rule {
    id     = "expire-unconfirmed-uploads"
    status = "Enabled"
    filter {
      prefix = "pending/"
    }
    expiration {
      days = var.pending_upload_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.images]
}

resource "aws_s3_bucket_cors_configuration" "images" {
  bucket = aws_s3_bucket.images.id
  cors_rule {
    allowed_methods = ["PUT", "GET", "HEAD"]
    allowed_origins = var.app_origins
    allowed_headers = ["content-type", "content-md5", "x-amz-*"]
    expose_headers  = ["ETag"]
    max_age_seconds = 3000
  }
}

data "aws_iam_policy_document" "images" {
  statement {
    sid       = "CloudFrontOriginAccessControl"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.images.arn}/*"]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.images.arn]
    }
  }
  # Unconfirmed uploads are never served: only the images function reads pending/ (to check them).
  statement {
    sid       = "NoCdnForUnconfirmedUploads"
    effect    = "Deny"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.images.arn}/pending/*"]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }
  }
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.images.arn, "${aws_s3_bucket.images.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "images" {
  bucket     = aws_s3_bucket.images.id
  policy     = data.aws_iam_policy_document.images.json
  depends_on = [aws_s3_bucket_public_access_block.images]
}

resource "aws_cloudfront_origin_access_control" "images" {
  name                              = var.bucket_name
  description                       = "Eco2 images bucket"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# AWS managed cache policy CachingOptimized (stable ID).
locals {
  caching_optimized_policy_id = "658327ea-f89d-4fab-a63d-7e88639e58f6"
}

resource "aws_cloudfront_response_headers_policy" "images" {
  #checkov:skip=CKV_AWS_259:HSTS is enforced (1 year, includeSubDomains); only "preload" is off, because the preload list is managed on the apex domain, never on a CDN subdomain.
  name    = "${replace(var.bucket_name, ".", "-")}-security-headers"
  comment = "Eco2 images: security headers"
  security_headers_config {
    content_type_options {
      override = true
    }
    frame_options {
      frame_option = "DENY"
      override     = true
    }
    referrer_policy {
      referrer_policy = "strict-origin-when-cross-origin"
      override        = true
    }
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = false
      override                   = true
    }
  }
}

resource "aws_cloudfront_distribution" "images" {
  #checkov:skip=CKV_AWS_68:No WAF on a read-only CDN of content-addressed images; abuse is bounded by CloudFront's own DDoS protection (Shield Standard). Revisit if hotlinking costs appear.
  #checkov:skip=CKV2_AWS_47:Log4j WAF rule set is irrelevant: the origin is S3, there is no Java behind this distribution.
  #checkov:skip=CKV_AWS_86:Standard logging would need a log bucket with ACLs enabled; CloudFront's built-in reports are enough for an image CDN.
  #checkov:skip=CKV_AWS_310:Single-origin distribution: S3 is regional and durable, an origin group would need a replicated bucket (see CKV_AWS_144).
  #checkov:skip=CKV_AWS_374:Geo restriction is not wanted: images are shown wherever the app is used.
  #checkov:skip=CKV_AWS_305:No default root object: the distribution only serves image keys, never "/".
  enabled         = true
  is_ipv6_enabled = true
  comment         = "Eco2 images (${var.images_domain})"
  aliases         = [var.images_domain]
  price_class     = var.price_class
  http_version    = "http2and3"

  origin {
    origin_id                = "images-s3"
    domain_name              = aws_s3_bucket.images.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.images.id
  }

  default_cache_behavior {
    target_origin_id           = "images-s3"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = local.caching_optimized_policy_id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.images.id
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = var.certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }

  tags = var.tags
}

resource "aws_route53_record" "images" {
  for_each = toset(["A", "AAAA"])
  zone_id  = var.zone_id
  name     = var.images_domain
  type     = each.value
  alias {
    name                   = aws_cloudfront_distribution.images.domain_name
    zone_id                = aws_cloudfront_distribution.images.hosted_zone_id
    evaluate_target_health = false
  }
}
