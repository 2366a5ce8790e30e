# `terraform test` on the composite module with mocked AWS providers: a full plan + apply of one
# environment without credentials or network (tests/infra runs it when the hashicorp/aws provider
# is available from a local filesystem mirror). It checks what a static read cannot: every
# for_each/count resolves, and the outputs the Ansible inventory reads have the expected shape.

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_data "aws_ami" {
    defaults = {
      id = "ami-0123456789abcdef0"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "ap-northeast-2"
    }
  }
  mock_resource "aws_iam_policy" {
    defaults = {
      arn = "arn:aws:iam::123456789012:policy/mock"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mock"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:ap-northeast-2:123456789012:log-group:mock"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::eco2-test-images"
    }
  }
  mock_resource "aws_cloudfront_distribution" {
    defaults = {
      arn = "arn:aws:cloudfront::123456789012:distribution/EMOCK"
    }
  }
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
      domain_validation_options = [{
        domain_name           = "mock.eco2.example"
        resource_record_name  = "_mock.eco2.example."
        resource_record_type  = "CNAME"
        resource_record_value = "_mock.acm-validations.aws."
      }]
    }
  }
  mock_resource "aws_acm_certificate_validation" {
    defaults = {
      certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
    }
  }
  mock_resource "aws_instance" {
    defaults = {
      id                = "i-0123456789abcdef0"
      availability_zone = "ap-northeast-2a"
      private_ip        = "10.20.16.10"
    }
  }
}

mock_provider "aws" {
  alias = "us_east_1"
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
      domain_validation_options = [{
        domain_name           = "mock.eco2.example"
        resource_record_name  = "_mock.eco2.example."
        resource_record_type  = "CNAME"
        resource_record_value = "_mock.acm-validations.aws."
      }]
    }
  }
  mock_resource "aws_acm_certificate_validation" {
    defaults = {
      certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
    }
  }
}

variables {
  env                = "test"
  azs                = ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]
  vpc_cidr           = "10.20.0.0/16"
  single_nat_gateway = true
  ssh_allowed_cidrs  = ["203.0.113.0/24"]
  ssh_public_key     = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEco2TestKeyOnly eco2"
  instance_types = {
    control_plane = "t3.large"
    api           = "t3.small"
    worker        = "t3.medium"
    rabbitmq      = "t3.small"
    postgresql    = "t3.small"
    redis         = "t3.small"
    monitoring    = "t3.medium"
  }
  zone_name          = "eco2.example"
  api_domain         = "api.test.eco2.example"
  images_domain      = "images.test.eco2.example"
  images_bucket_name = "eco2-test-images"
  app_origins        = ["https://test.eco2.example"]
}

run "fourteen_nodes_by_role" {
  command = apply

  assert {
    condition     = length(output.nodes) == 14
    error_message = "Eco² runs on exactly 14 nodes."
  }
  assert {
    condition = (
      length([for n in output.nodes : n if n.role == "control-plane"]) == 1 &&
      length([for n in output.nodes : n if n.role == "api"]) == 7 &&
      length([for n in output.nodes : n if n.role == "worker"]) == 2 &&
      length([for n in output.nodes : n if n.role == "rabbitmq"]) == 1 &&
      length([for n in output.nodes : n if n.role == "postgresql"]) == 1 &&
      length([for n in output.nodes : n if n.role == "redis"]) == 1 &&
      length([for n in output.nodes : n if n.role == "monitoring"]) == 1
    )
    error_message = "Roles: 1 control plane, 7 API, 2 workers, 1 each of rabbitmq, postgresql, redis, monitoring."
  }
  assert {
    condition     = toset([for n in output.nodes : n.domain if n.role == "api"]) == toset(["auth", "my", "scan", "character", "location", "info", "chat"])
    error_message = "One API node per domain group."
  }
  assert {
    condition     = alltrue([for n in output.nodes : startswith(n.provider_id, "aws:///${n.az}/")])
    error_message = "provider_id must be aws:///<az>/<instance-id>."
  }
  assert {
    condition     = output.alb_name == "eco2-test-api" && output.cluster_name == "eco2-test"
    error_message = "Names the ALB Ingress and kubeadm use."
  }
}

run "ssh_from_anywhere_is_rejected" {
  command = plan

  variables {
    ssh_allowed_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.ssh_allowed_cidrs]
}
