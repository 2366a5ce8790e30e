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
