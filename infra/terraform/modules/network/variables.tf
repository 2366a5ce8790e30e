variable "name" {
  description = "Name prefix for every resource (e.g. eco2-dev)."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC."
  type        = string
}

variable "azs" {
  description = "Exactly three availability zones; one public and one private subnet in each."
  type        = list(string)

  validation {
    condition     = length(var.azs) == 3
    error_message = "Eco² spreads its subnets over exactly three availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all private subnets (cheaper; dev) instead of one per AZ (prod)."
  type        = bool
  default     = true
}

variable "cluster_name" {
  description = "Kubernetes cluster name, used for the kubernetes.io/cluster/<name> subnet tags the AWS Load Balancer Controller discovers."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
