module "eco2" {
  source = "../../modules/eco2"

  env                 = var.env
  azs                 = var.azs
  vpc_cidr            = var.vpc_cidr
  single_nat_gateway  = var.single_nat_gateway
  ssh_allowed_cidrs   = var.ssh_allowed_cidrs
  ssh_public_key      = var.ssh_public_key
  instance_types      = var.instance_types
  detailed_monitoring = var.detailed_monitoring
  zone_name           = var.zone_name
  api_domain          = var.api_domain
  images_domain       = var.images_domain
  images_bucket_name  = var.images_bucket_name
  app_origins         = var.app_origins
  api_record_enabled  = var.api_record_enabled
  addons_assume_roles = var.addons_assume_roles

  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }
}
