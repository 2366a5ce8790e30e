"""images: presigned uploads to S3 and their confirmation (API.md "images")."""
