"""Workers: the Database-backend pull worker, its process supervisor and the health server."""
