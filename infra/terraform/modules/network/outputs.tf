output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets, one per AZ, in the order of var.azs."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets, one per AZ, in the order of var.azs."
  value       = aws_subnet.private[*].id
}

output "nat_public_ips" {
  description = "Egress addresses of the cluster (allow-list them at OAuth providers if needed)."
  value       = aws_eip.nat[*].public_ip
}
