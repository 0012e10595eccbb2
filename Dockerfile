# The hub image of the Helm chart (helm/cern-spawner): JupyterHub with CERNSpawner and
# CERNAuthenticator. configurable-http-proxy runs from its own upstream image.
#
#   docker build -t registry.cern.ch/cern-spawner/hub:0.1.0 .
#
# The chart mounts the configuration (/etc/jupyterhub), the profiles and the secrets, and keeps the
# sqlite database on a volume at /srv/jupyterhub; the image carries no configuration of its own.
FROM python:3.12-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY cern_spawner ./cern_spawner
# The pins the tests ran with; psycopg2 for hub.db.type=postgres.
RUN pip install --constraint constraints.txt . "psycopg2-binary>=2.9" \
    && rm -rf /src

# A numeric non-root user, so that Pod Security `restricted` (runAsNonRoot) can verify it.
RUN useradd --uid 1000 --user-group --home-dir /srv/jupyterhub --create-home jovyan
USER 1000:1000
WORKDIR /srv/jupyterhub
EXPOSE 8081
CMD ["jupyterhub", "--config", "/etc/jupyterhub/jupyterhub_config.py"]
