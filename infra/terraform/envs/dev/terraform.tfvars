env                = "dev"
vpc_cidr           = "10.20.0.0/16"
single_nat_gateway = true
# Replace with your office / VPN range. 0.0.0.0/0 is rejected by the security module.
ssh_allowed_cidrs = ["203.0.113.0/24"]

instance_types = {
  control_plane = "t3.large"
  api           = "t3.small"
  worker        = "t3.medium"
  rabbitmq      = "t3.small"
  postgresql    = "t3.small"
  redis         = "t3.small"
  monitoring    = "t3.medium"
}
detailed_monitoring = false

zone_name          = "eco2.example"
api_domain         = "api.dev.eco2.example"
images_domain      = "images.dev.eco2.example"
images_bucket_name = "eco2-dev-images-replace-account-id"
app_origins        = ["https://dev.eco2.example", "http://localhost:5173"]
