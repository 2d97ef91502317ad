"""Organizations, people, campaigns and participations; the teacher panel and student journey."""
