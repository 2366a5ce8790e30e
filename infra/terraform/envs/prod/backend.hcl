# terraform init -backend-config=backend.hcl  (values from envs/bootstrap outputs)
bucket         = "eco2-terraform-state-REPLACE-ACCOUNT-ID"
key            = "envs/prod/terraform.tfstate"
region         = "ap-northeast-2"
dynamodb_table = "eco2-terraform-locks"
encrypt        = true
