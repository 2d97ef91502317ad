"""LTI 1.3 tool: platform registrations, launches, deep linking, grade passback, rosters."""
