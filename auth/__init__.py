"""Authentication and authorization: who a client is (authenticator, second factors, certificates, the
organisation's directory), what it may do (the pure policy over principals), and how failed logins are throttled.
Imports nothing from ``gateway/``."""
