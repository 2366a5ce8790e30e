# terraform init -backend-config=backend.hcl  (after the first apply: infra/README.md, step 1)
bucket         = "eco2-terraform-state-REPLACE-ACCOUNT-ID"
key            = "bootstrap/terraform.tfstate"
region         = "ap-northeast-2"
dynamodb_table = "eco2-terraform-locks"
encrypt        = true
