"""The API's views, one module per concept; each hands its work to a service function."""
