# The 14 nodes of Eco², by role. The topology is fixed here (tests/infra checks it); sizes are
# variables. Roles become Kubernetes labels and taints in infra/ansible (applied from the control
# plane: a kubelet may not label itself node-role.kubernetes.io/*):
#
#   node                role           domain     profile        where
#   k8s-control-plane   control-plane  -          control-plane  public subnet, AZ a (SSH/API entry)
#   k8s-api-<domain>    api            7 domains  functions      private, spread over the AZs
#   k8s-worker-1..2     worker         -          addons         private (event workers, add-on controllers)
#   k8s-rabbitmq        rabbitmq       -          data           private
#   k8s-postgresql      postgresql     -          data           private
#   k8s-redis           redis          -          data           private
#   k8s-monitoring      monitoring     -          data           private

locals {
  # One API node per domain group; "my" is the users function's domain.
  api_domains = ["auth", "my", "scan", "character", "location", "info", "chat"]

  # Every other node, literally (tests/infra reads this map and api_domains: 7 + 7 = 14 nodes).
  fixed_nodes = {
    "k8s-control-plane" = { role = "control-plane", type_key = "control_plane", domain = "", profile = "control-plane", az = 0, public = true }
    "k8s-worker-1"      = { role = "worker", type_key = "worker", domain = "", profile = "addons", az = 1, public = false }
    "k8s-worker-2"      = { role = "worker", type_key = "worker", domain = "", profile = "addons", az = 2, public = false }
    "k8s-rabbitmq"      = { role = "rabbitmq", type_key = "rabbitmq", domain = "", profile = "data", az = 0, public = false }
    "k8s-postgresql"    = { role = "postgresql", type_key = "postgresql", domain = "", profile = "data", az = 1, public = false }
    "k8s-redis"         = { role = "redis", type_key = "redis", domain = "", profile = "data", az = 2, public = false }
    "k8s-monitoring"    = { role = "monitoring", type_key = "monitoring", domain = "", profile = "data", az = 0, public = false }
  }

  nodes = merge(
    local.fixed_nodes,
    { for i, d in local.api_domains : "k8s-api-${d}" => { role = "api", type_key = "api", domain = d, profile = "functions", az = i % 3, public = false } },
  )
}

data "aws_ami" "ubuntu" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["099720109477"] # Canonical
  filter {
    name   = "name"
    values = ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
  }
  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }
}

resource "aws_key_pair" "ansible" {
  key_name   = "${var.name}-ansible"
  public_key = var.ssh_public_key
  tags       = var.tags
}

resource "aws_instance" "node" {
  for_each = local.nodes

  ami                         = var.ami_id != null ? var.ami_id : data.aws_ami.ubuntu[0].id
  instance_type               = var.instance_types[each.value.type_key]
  subnet_id                   = each.value.public ? var.public_subnet_ids[each.value.az] : var.private_subnet_ids[each.value.az]
  associate_public_ip_address = each.value.public
  key_name                    = aws_key_pair.ansible.key_name
  iam_instance_profile        = var.instance_profiles[each.value.profile]
  ebs_optimized               = true
  monitoring                  = var.detailed_monitoring
  # Calico routes pod traffic over VXLAN, so the source/destination check can stay on.
  source_dest_check = true
  vpc_security_group_ids = concat(
    [var.nodes_security_group_id],
    each.value.role == "control-plane" ? [var.control_plane_security_group_id] : [],
  )

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required" # IMDSv2 only
    # 2 hops: pods (AWS Load Balancer Controller, EBS CSI) read the instance profile through IMDS.
    http_put_response_hop_limit = 2
    # Off: with tags in instance metadata AWS refuses tag keys containing "/" (and every node carries
    # kubernetes.io/cluster/<name>, eco2.io/role and the providers' default_tags), so no instance
    # would launch. Nothing on the nodes reads tags from IMDS; the inventory takes roles from
    # Terraform's outputs.
    instance_metadata_tags = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb[each.value.type_key]
    encrypted             = true
    delete_on_termination = true
  }

  tags = merge(var.tags, {
    Name                                        = each.key
    "eco2.io/role"                              = each.value.role
    "eco2.io/domain"                            = each.value.domain
    "kubernetes.io/cluster/${var.cluster_name}" = "owned"
  })

  lifecycle {
    ignore_changes = [ami] # a new AMI is rolled out node by node (README: upgrades), not by replace
  }
}
