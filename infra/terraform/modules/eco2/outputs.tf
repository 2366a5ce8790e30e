# Everything infra/ansible (inventory + group vars) and infra/k8s (overlay values) need.

output "cluster_name" {
  description = "Kubernetes cluster name."
  value       = local.cluster_name
}

output "nodes" {
  description = "Every node by name: instance id, IPs, AZ, role, domain, providerID."
  value       = module.nodes.nodes
}

output "vpc_id" {
  description = "VPC ID (AWS Load Balancer Controller --aws-vpc-id)."
  value       = module.network.vpc_id
}

output "vpc_cidr" {
  description = "VPC CIDR."
  value       = module.network.vpc_cidr
}

output "public_subnet_ids" {
  description = "Public subnets (ALB)."
  value       = module.network.public_subnet_ids
}

output "alb_name" {
  description = "Name the ALB Ingress must give its load balancer."
  value       = local.alb_name
}

output "alb_security_group_id" {
  description = "Security group the ALB Ingress must use (alb.ingress.kubernetes.io/security-groups)."
  value       = module.security.alb_security_group_id
}

output "api_certificate_arn" {
  description = "ACM certificate for the ALB Ingress."
  value       = module.edge.api_certificate_arn
}

output "api_domain" {
  description = "Public API name."
  value       = var.api_domain
}

output "images_bucket" {
  description = "Images bucket."
  value       = module.images.bucket_name
}

output "images_cdn_domain" {
  description = "Images CDN name."
  value       = module.images.cdn_domain
}

output "region" {
  description = "AWS region of the cluster."
  value       = data.aws_region.current.name
}
