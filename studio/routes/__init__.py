"""The studio's routes, one router per resource: sessions, annotations, jobs, models, exports."""
