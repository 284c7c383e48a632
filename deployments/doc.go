// Package deployments holds the container image (Dockerfile) and the tests that check it and
// the repository's docker-compose.yml without a Docker engine: the compose file is loaded with
// compose-go (the loader of `docker compose` itself), and the binaries are run as the image's
// non-root user against a root-owned data dir.
package deployments
