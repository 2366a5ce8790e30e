variable "zone_name" {
  description = "Route53 public hosted zone (created by envs/bootstrap), e.g. eco2.example."
  type        = string
}

variable "api_domain" {
  description = "Public name of the API (the ALB), e.g. api.eco2.example."
  type        = string
}

variable "images_domain" {
  description = "Public name of the images CDN (CloudFront), e.g. images.eco2.example."
  type        = string
}

variable "alb_name" {
  description = "Name the ALB Ingress gives its load balancer (alb.ingress.kubernetes.io/load-balancer-name)."
  type        = string
}

variable "api_record_enabled" {
  description = "Create the api record once the AWS Load Balancer Controller has created the ALB (second apply, see infra/README.md)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
