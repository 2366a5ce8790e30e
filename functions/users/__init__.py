"""users: the "my" domain — profile and owned characters (API.md "users")."""
