zone_name = "eco2.example"
