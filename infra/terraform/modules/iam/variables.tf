variable "name" {
  description = "Name prefix."
  type        = string
}

variable "images_bucket_arn" {
  description = "ARN of the images bucket: the only bucket the functions may touch."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "assume_roles" {
  description = "Names of IAM roles (this account) the worker nodes may assume, e.g. eco2-atlantis in prod."
  type        = list(string)
  default     = []
}
