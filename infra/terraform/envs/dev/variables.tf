variable "env" {
  description = "Environment name."
  type        = string
}

variable "region" {
  description = "AWS region of the cluster."
  type        = string
  default     = "ap-northeast-2"
}

variable "azs" {
  description = "Three availability zones of var.region."
  type        = list(string)
  default     = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
}

variable "vpc_cidr" {
  description = "CIDR of the VPC."
  type        = string
}

variable "single_nat_gateway" {
  description = "One NAT gateway instead of one per AZ."
  type        = bool
}

variable "ssh_allowed_cidrs" {
  description = "Admin ranges allowed to SSH and to reach the API server (never 0.0.0.0/0)."
  type        = list(string)
}

variable "ssh_public_key" {
  description = "Public key for Ansible (export TF_VAR_ssh_public_key=\"$(cat ~/.ssh/eco2.pub)\")."
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
  description = "Route53 public hosted zone (envs/bootstrap creates it)."
  type        = string
}

variable "api_domain" {
  description = "Public API name."
  type        = string
}

variable "images_domain" {
  description = "Public images CDN name."
  type        = string
}

variable "images_bucket_name" {
  description = "Images bucket name (globally unique)."
  type        = string
}

variable "app_origins" {
  description = "App origins for the images bucket's CORS."
  type        = list(string)
}

variable "api_record_enabled" {
  description = "Second apply: create the API alias record once the ALB Ingress created the ALB."
  type        = bool
  default     = false
}

variable "addons_assume_roles" {
  description = "IAM roles the worker nodes may assume: eco2-atlantis where Atlantis runs (prod)."
  type        = list(string)
  default     = []
}
