// Package terraform holds the AWS deployment of danmaku as a Terraform module
// (the .tf files in this directory and examples/complete). It has no Go code:
// its tests parse the configuration offline and check the CDN, S3 and
// timeout rules that DESIGN.md sets, against the Go code's own constants.
package terraform
