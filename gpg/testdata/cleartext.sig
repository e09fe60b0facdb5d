-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

{"critical":{"identity":{"docker-reference":"registry.example.com/signet/test:v1"},"image":{"docker-manifest-digest":"sha256:008e92e51d8c82b71cbc24cddddb5b49b20d44f6083ba91bb9c19104537ed21e"},"type":"atomic container signature"},"optional":{"creator":"signet generate.sh","timestamp":1704067200}}
-----BEGIN PGP SIGNATURE-----

iHUEARYIAB0WIQRk7cLJHoWfHtrZai/g2eVh9bq76AUCZZIAgAAKCRDg2eVh9bq7
6PyHAQCm3N9qgvb7u8KOe52pe5oGe5aV3Pbs9LrhWdRj3UEN6AD5AdJbTTyCBCpg
znt8xQa317LacqqRKlZwtbXaAQQKvwQ=
=IhE9
-----END PGP SIGNATURE-----
