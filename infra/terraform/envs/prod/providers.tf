provider "aws" {
  region = var.region
  default_tags {
    tags = {
      "app"                    = "eco2"
      "eco2.io/managed-by"     = "terraform"
      "eco2.io/terraform-root" = "infra/terraform/envs/${var.env}"
    }
  }
}

# CloudFront only accepts ACM certificates issued in us-east-1.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
  default_tags {
    tags = {
      "app"                    = "eco2"
      "eco2.io/managed-by"     = "terraform"
      "eco2.io/terraform-root" = "infra/terraform/envs/${var.env}"
    }
  }
}
