variable "name" {
  description = "Name prefix."
  type        = string
}

variable "cluster_name" {
  description = "Kubernetes cluster name (kubernetes.io/cluster/<name> tag)."
  type        = string
}

variable "azs" {
  description = "Availability zones, in the order of the subnet lists."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets (the control plane lives in the first one)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Private subnets (every other node)."
  type        = list(string)
}

variable "nodes_security_group_id" {
  description = "Security group of every node."
  type        = string
}

variable "control_plane_security_group_id" {
  description = "Extra security group of the control plane."
  type        = string
}

variable "instance_profiles" {
  description = "Instance profile name by profile key (control-plane, addons, functions, data)."
  type        = map(string)
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

variable "root_volume_gb" {
  description = "Root volume size by node role (GiB, gp3). Data lives on separate EBS CSI volumes."
  type        = map(number)
  default = {
    control_plane = 50
    api           = 30
    worker        = 50
    rabbitmq      = 30
    postgresql    = 30
    redis         = 30
    monitoring    = 50
  }
}

variable "ami_id" {
  description = "AMI for every node; null picks the newest Ubuntu 24.04 LTS amd64 image from Canonical."
  type        = string
  default     = null
}

variable "ssh_public_key" {
  description = "Public key Ansible logs in with (user ubuntu)."
  type        = string
}

variable "detailed_monitoring" {
  description = "1-minute CloudWatch metrics on every instance."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
