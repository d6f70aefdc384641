//! The certificate commands (`warden certs ...`) and the PKI they share with the tests and demo.
