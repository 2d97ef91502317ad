"""SAML 2.0 service provider and the GAR connector."""
