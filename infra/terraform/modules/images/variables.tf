variable "bucket_name" {
  description = "Name of the images bucket (globally unique)."
  type        = string
}

variable "images_domain" {
  description = "CloudFront alias for the bucket, e.g. images.eco2.example."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for images_domain, issued in us-east-1."
  type        = string
}

variable "zone_id" {
  description = "Route53 zone for the alias record."
  type        = string
}

variable "app_origins" {
  description = "Origins of the app allowed to PUT presigned uploads from a browser (CORS)."
  type        = list(string)

  validation {
    condition     = alltrue([for o in var.app_origins : can(regex("^https://", o)) || can(regex("^http://(localhost|127\\.0\\.0\\.1)(:[0-9]+)?$", o))])
    error_message = "app_origins must be https:// origins (or http://localhost for development)."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted image version is kept before it expires."
  type        = number
  default     = 30
}

variable "pending_upload_days" {
  description = "Days an unconfirmed upload under pending/ is kept (the images function copies confirmed ones out and deletes them there)."
  type        = number
  default     = 1

  validation {
    condition     = var.pending_upload_days >= 1 && var.pending_upload_days <= 7
    error_message = "pending_upload_days must be 1 to 7: an upload is confirmed within minutes or never."
  }
}

variable "price_class" {
  description = "CloudFront price class (PriceClass_200 includes Korea and Japan)."
  type        = string
  default     = "PriceClass_200"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
