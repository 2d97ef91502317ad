"""The product, in folders by audience: `shared` (models, errors, organizations, content
releases), `accounts` (users, passwords, sessions, sign-in), `journey` (the student's test),
`orga` (the teacher panel), `district` (`/admin`). `connectors` is the one module the LMS and
SSO connectors use."""
