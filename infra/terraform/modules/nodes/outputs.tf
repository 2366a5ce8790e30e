output "nodes" {
  description = "Every node: the Ansible inventory's input (infra/ansible/inventory/terraform_inventory.py)."
  value = {
    for name, n in aws_instance.node : name => {
      instance_id = n.id
      private_ip  = n.private_ip
      public_ip   = n.public_ip
      az          = n.availability_zone
      role        = local.nodes[name].role
      domain      = local.nodes[name].domain
      provider_id = "aws:///${n.availability_zone}/${n.id}"
    }
  }
}

output "instance_ids" {
  description = "Instance IDs (ALB target registration is done by the controller, this is for operators)."
  value       = [for n in aws_instance.node : n.id]
}
