variable "env" {
  description = "Environment name (dev, prod)."
  type        = string
}

variable "azs" {
  description = "Three availability zones."
  type        = list(string)
}

variable "vpc_cidr" {
  description = "CIDR of the VPC."
  type        = string
}

variable "single_nat_gateway" {
  description = "One NAT gateway (dev) or one per AZ (prod)."
  type        = bool
}

variable "ssh_allowed_cidrs" {
  description = "Admin ranges allowed to SSH to the nodes and to reach the API server."
  type        = list(string)

  validation {
    condition     = length(var.ssh_allowed_cidrs) > 0 && alltrue([for c in var.ssh_allowed_cidrs : c != "0.0.0.0/0" && can(cidrhost(c, 0))])
    error_message = "ssh_allowed_cidrs must list valid CIDRs and must not contain 0.0.0.0/0."
  }
}

variable "ssh_public_key" {
  description = "Public key Ansible logs in with."
  type        = string
}

variable "instance_types" {
  description = "EC2 instance type by node role."
  type = object({
    control_plane = string
    api           = string
    worker        = string
    rabbitmq      = string
    postgresql    = string
    redis         = string
    monitoring    = string
  })
}

variable "detailed_monitoring" {
  description = "1-minute CloudWatch metrics on every instance."
  type        = bool
  default     = true
}

variable "zone_name" {
  description = "Route53 public hosted zone."
  type        = string
}

variable "api_domain" {
  description = "Public API name (ALB)."
  type        = string
}

variable "images_domain" {
  description = "Public images name (CloudFront)."
  type        = string
}

variable "images_bucket_name" {
  description = "Images bucket name."
  type        = string
}

variable "app_origins" {
  description = "App origins allowed by the bucket's CORS."
  type        = list(string)
}

variable "api_record_enabled" {
  description = "Create the API alias record (second apply, once the ALB exists)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "addons_assume_roles" {
  description = "IAM roles the worker nodes may assume (prod: eco2-atlantis)."
  type        = list(string)
  default     = []
}
