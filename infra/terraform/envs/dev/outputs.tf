# `terraform output -json` of this root is the input of infra/ansible/inventory/terraform_inventory.py
# and of infra/tools/render-overlay-values.py.

output "cluster_name" {
  description = "Kubernetes cluster name."
  value       = module.eco2.cluster_name
}

output "nodes" {
  description = "Every node by name: instance id, IPs, AZ, role, domain, providerID."
  value       = module.eco2.nodes
}

output "region" {
  description = "AWS region."
  value       = module.eco2.region
}

output "vpc_id" {
  description = "VPC ID."
  value       = module.eco2.vpc_id
}

output "vpc_cidr" {
  description = "VPC CIDR."
  value       = module.eco2.vpc_cidr
}

output "public_subnet_ids" {
  description = "Public subnets (ALB)."
  value       = module.eco2.public_subnet_ids
}

output "alb_name" {
  description = "Load balancer name for the ALB Ingress."
  value       = module.eco2.alb_name
}

output "alb_security_group_id" {
  description = "Security group for the ALB Ingress."
  value       = module.eco2.alb_security_group_id
}

output "api_certificate_arn" {
  description = "ACM certificate for the ALB Ingress."
  value       = module.eco2.api_certificate_arn
}

output "api_domain" {
  description = "Public API name."
  value       = module.eco2.api_domain
}

output "images_bucket" {
  description = "Images bucket."
  value       = module.eco2.images_bucket
}

output "images_cdn_domain" {
  description = "Images CDN name."
  value       = module.eco2.images_cdn_domain
}
