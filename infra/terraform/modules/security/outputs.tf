output "alb_security_group_id" {
  description = "Security group of the ALB."
  value       = aws_security_group.alb.id
}

output "nodes_security_group_id" {
  description = "Security group every node carries."
  value       = aws_security_group.nodes.id
}

output "control_plane_security_group_id" {
  description = "Extra security group of the control plane."
  value       = aws_security_group.control_plane.id
}
