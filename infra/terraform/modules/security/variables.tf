variable "name" {
  description = "Name prefix."
  type        = string
}

variable "vpc_id" {
  description = "VPC the groups belong to."
  type        = string
}

variable "ssh_allowed_cidrs" {
  description = "The only sources allowed to SSH to the nodes (and to reach the API server from outside the cluster): an office or VPN range, never 0.0.0.0/0."
  type        = list(string)

  validation {
    condition     = length(var.ssh_allowed_cidrs) > 0 && alltrue([for c in var.ssh_allowed_cidrs : c != "0.0.0.0/0" && can(cidrhost(c, 0))])
    error_message = "ssh_allowed_cidrs must list valid CIDRs and must not contain 0.0.0.0/0."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
