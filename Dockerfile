# One image for the code server, the webserver, the daemon (docker-compose.yml) and the run
# containers or pods (docker-compose.docker-launcher.yml, deploy/helm/values.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/home

WORKDIR /opt/quality_assets
COPY pyproject.toml README.md ./
COPY quality_assets ./quality_assets
RUN pip install '.[launchers]' \
    && useradd --create-home --uid 1000 dagster \
    && mkdir -p /opt/dagster/home/storage /data/warehouse /data/lake /data/output /backups \
    && chown -R dagster:dagster /opt/dagster /data /backups

COPY dagster.yaml workspace.yaml /opt/dagster/home/

USER dagster
EXPOSE 3000 4000
