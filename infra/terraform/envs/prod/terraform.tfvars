env                = "prod"
vpc_cidr           = "10.10.0.0/16"
single_nat_gateway = false
# Replace with your office / VPN range. 0.0.0.0/0 is rejected by the security module.
ssh_allowed_cidrs = ["203.0.113.0/24"]

instance_types = {
  control_plane = "t3.large"
  api           = "t3.medium"
  worker        = "t3.large"
  rabbitmq      = "t3.medium"
  postgresql    = "t3.large"
  redis         = "t3.medium"
  monitoring    = "t3.large"
}
detailed_monitoring = true

zone_name          = "eco2.example"
api_domain         = "api.eco2.example"
images_domain      = "images.eco2.example"
images_bucket_name = "eco2-prod-images-replace-account-id"
app_origins        = ["https://eco2.example", "https://www.eco2.example"]

# Atlantis runs in this cluster, on the workers: they may assume its role (envs/bootstrap/atlantis.tf)
addons_assume_roles = ["eco2-atlantis"]
