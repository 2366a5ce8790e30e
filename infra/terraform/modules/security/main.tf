# Security groups. Every rule is its own resource so a reviewer (and tests/infra) can read each
# port once. Open to the internet: only HTTPS 443 on the ALB. Between nodes: exactly what kubeadm
# and Calico (VXLAN encapsulation, BGP, Typha) need. NodePorts: only from the ALB.
#
#   port            proto  from                   why
#   6443            tcp    nodes, admin CIDRs     kube-apiserver
#   2379-2380       tcp    control plane          etcd client/peer (stacked etcd on the control plane)
#   10250           tcp    nodes                  kubelet API (logs, exec, metrics)
#   10257, 10259    tcp    nodes                  controller-manager / scheduler metrics (Prometheus)
#   179             tcp    nodes                  Calico BGP
#   4789            udp    nodes                  Calico VXLAN (pod-to-pod traffic)
#   5473            tcp    nodes                  Calico Typha
#   9100            tcp    nodes                  node-exporter (host network; kube-prometheus-stack)
#   30000-32767     tcp    ALB                    NodePorts: Istio ingress gateway (traffic + 15021 health)
#   22              tcp    admin CIDRs            SSH (Ansible) to the control plane, var.ssh_allowed_cidrs only
#   22              tcp    control plane          SSH to the private nodes: Ansible's ProxyJump through the
#                                                 control plane arrives from its private address

locals {
  node_to_node = {
    kubelet       = { from = 10250, to = 10250, proto = "tcp", what = "kubelet API" }
    kcm_metrics   = { from = 10257, to = 10257, proto = "tcp", what = "kube-controller-manager metrics" }
    sched_metrics = { from = 10259, to = 10259, proto = "tcp", what = "kube-scheduler metrics" }
    calico_bgp    = { from = 179, to = 179, proto = "tcp", what = "Calico BGP" }
    calico_vxlan  = { from = 4789, to = 4789, proto = "udp", what = "Calico VXLAN" }
    calico_typha  = { from = 5473, to = 5473, proto = "tcp", what = "Calico Typha" }
    node_exporter = { from = 9100, to = 9100, proto = "tcp", what = "node-exporter" }
  }
}

# -- ALB: 443 from anywhere, out only to the nodes' NodePorts ---------------------------------------
resource "aws_security_group" "alb" {
  #checkov:skip=CKV2_AWS_5:Attached outside Terraform: the ALB Ingress names this group (alb.ingress.kubernetes.io/security-groups) and the AWS Load Balancer Controller creates the ALB with it.
  name        = "${var.name}-alb"
  description = "Eco2 public ALB: HTTPS in, NodePorts out"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-alb" })
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  #checkov:skip=CKV_AWS_260:Not port 80: this is the public HTTPS listener (443), the only internet-facing port of the system.
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from the internet"
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = 443
  to_port           = 443
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "alb_to_nodeports" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the Istio ingress gateway NodePorts"
  referenced_security_group_id = aws_security_group.nodes.id
  from_port                    = 30000
  to_port                      = 32767
  ip_protocol                  = "tcp"
}

# -- every cluster node ------------------------------------------------------------------------------
resource "aws_security_group" "nodes" {
  #checkov:skip=CKV2_AWS_5:Attached to aws_instance.node in modules/nodes through module.eco2's wiring; checkov's graph does not follow a value from one child module into a sibling.
  name        = "${var.name}-nodes"
  description = "Eco2 Kubernetes nodes (kubeadm, Calico)"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-nodes" })
}

# The control plane additionally carries this group: etcd and the API server's external entry.
resource "aws_security_group" "control_plane" {
  #checkov:skip=CKV2_AWS_5:Attached to aws_instance.node in modules/nodes through module.eco2's wiring; checkov's graph does not follow a value from one child module into a sibling.
  name        = "${var.name}-control-plane"
  description = "Eco2 control plane (API server, etcd)"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-control-plane" })
}

resource "aws_vpc_security_group_ingress_rule" "node_to_node" {
  for_each                     = local.node_to_node
  security_group_id            = aws_security_group.nodes.id
  description                  = each.value.what
  referenced_security_group_id = aws_security_group.nodes.id
  from_port                    = each.value.from
  to_port                      = each.value.to
  ip_protocol                  = each.value.proto
}

resource "aws_vpc_security_group_ingress_rule" "nodeports_from_alb" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "NodePorts from the ALB only"
  referenced_security_group_id = aws_security_group.alb.id
  from_port                    = 30000
  to_port                      = 32767
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each          = toset(var.ssh_allowed_cidrs)
  security_group_id = aws_security_group.nodes.id
  description       = "SSH from the admin range"
  cidr_ipv4         = each.value
  from_port         = 22
  to_port           = 22
  ip_protocol       = "tcp"
}

# Ansible reaches the 13 private nodes with ProxyJump through the control plane: that second hop
# starts at the control plane's private address, which the admin-range rule above does not cover.
resource "aws_vpc_security_group_ingress_rule" "ssh_from_control_plane" {
  #checkov:skip=CKV_AWS_24:The source is the control plane's security group (referenced_security_group_id), not 0.0.0.0/0; checkov reads a rule without a CIDR as open.
  security_group_id            = aws_security_group.nodes.id
  description                  = "SSH from the control plane (Ansible ProxyJump)"
  referenced_security_group_id = aws_security_group.control_plane.id
  from_port                    = 22
  to_port                      = 22
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "apiserver_from_nodes" {
  security_group_id            = aws_security_group.control_plane.id
  description                  = "kube-apiserver from the nodes"
  referenced_security_group_id = aws_security_group.nodes.id
  from_port                    = 6443
  to_port                      = 6443
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "apiserver_from_admin" {
  for_each          = toset(var.ssh_allowed_cidrs)
  security_group_id = aws_security_group.control_plane.id
  description       = "kube-apiserver from the admin range (kubectl, eco2 deploy)"
  cidr_ipv4         = each.value
  from_port         = 6443
  to_port           = 6443
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "etcd" {
  security_group_id            = aws_security_group.control_plane.id
  description                  = "etcd client and peer, control plane only"
  referenced_security_group_id = aws_security_group.control_plane.id
  from_port                    = 2379
  to_port                      = 2380
  ip_protocol                  = "tcp"
}

# Egress: anything inside the cluster, and HTTP(S) out through NAT (registries, package mirrors,
# AWS APIs, OAuth providers, OpenAI). DNS goes to the VPC resolver, which security groups do not
# filter.
resource "aws_vpc_security_group_egress_rule" "nodes_to_nodes" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "All traffic to other nodes (answers and pod traffic)"
  referenced_security_group_id = aws_security_group.nodes.id
  ip_protocol                  = "-1"
}

resource "aws_vpc_security_group_egress_rule" "nodes_to_control_plane" {
  security_group_id            = aws_security_group.nodes.id
  description                  = "To the API server and etcd"
  referenced_security_group_id = aws_security_group.control_plane.id
  ip_protocol                  = "-1"
}

resource "aws_vpc_security_group_egress_rule" "nodes_https" {
  security_group_id = aws_security_group.nodes.id
  description       = "HTTPS out (registries, AWS APIs, OAuth, OpenAI)"
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = 443
  to_port           = 443
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "nodes_http" {
  security_group_id = aws_security_group.nodes.id
  description       = "HTTP out (Debian/Ubuntu package mirrors)"
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = 80
  to_port           = 80
  ip_protocol       = "tcp"
}
