output "instance_profiles" {
  description = "Instance profile name by profile key (control-plane, addons, functions, data)."
  value       = { for k, p in aws_iam_instance_profile.node : k => p.name }
}

output "role_arns" {
  description = "Node role ARN by profile key."
  value       = { for k, r in aws_iam_role.node : k => r.arn }
}
