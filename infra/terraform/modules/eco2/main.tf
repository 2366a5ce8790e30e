# One Eco² environment: network, security groups, IAM, the 14 nodes, the images bucket + CDN,
# certificates and DNS. The env roots (envs/dev, envs/prod) only set variables and providers.

terraform {
  required_providers {
    aws = {
      source                = "hashicorp/aws"
      configuration_aliases = [aws.us_east_1]
    }
  }
}

locals {
  name         = "eco2-${var.env}"
  cluster_name = "eco2-${var.env}"
  alb_name     = "eco2-${var.env}-api"
  tags         = merge(var.tags, { "eco2.io/env" = var.env })
}

module "network" {
  source             = "../network"
  name               = local.name
  cluster_name       = local.cluster_name
  vpc_cidr           = var.vpc_cidr
  azs                = var.azs
  single_nat_gateway = var.single_nat_gateway
  tags               = local.tags
}

module "security" {
  source            = "../security"
  name              = local.name
  vpc_id            = module.network.vpc_id
  ssh_allowed_cidrs = var.ssh_allowed_cidrs
  tags              = local.tags
}

module "edge" {
  source             = "../edge"
  zone_name          = var.zone_name
  api_domain         = var.api_domain
  images_domain      = var.images_domain
  alb_name           = local.alb_name
  api_record_enabled = var.api_record_enabled
  tags               = local.tags
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }
}

module "images" {
  source          = "../images"
  bucket_name     = var.images_bucket_name
  images_domain   = var.images_domain
  certificate_arn = module.edge.images_certificate_arn
  zone_id         = module.edge.zone_id
  app_origins     = var.app_origins
  tags            = local.tags
}

module "iam" {
  source            = "../iam"
  name              = local.name
  images_bucket_arn = module.images.bucket_arn
  assume_roles      = var.addons_assume_roles
  tags              = local.tags
}

module "nodes" {
  source                          = "../nodes"
  name                            = local.name
  cluster_name                    = local.cluster_name
  azs                             = var.azs
  public_subnet_ids               = module.network.public_subnet_ids
  private_subnet_ids              = module.network.private_subnet_ids
  nodes_security_group_id         = module.security.nodes_security_group_id
  control_plane_security_group_id = module.security.control_plane_security_group_id
  instance_profiles               = module.iam.instance_profiles
  instance_types                  = var.instance_types
  ssh_public_key                  = var.ssh_public_key
  detailed_monitoring             = var.detailed_monitoring
  tags                            = local.tags
}

data "aws_region" "current" {}
