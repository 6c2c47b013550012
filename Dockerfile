FROM python:3.11-slim
WORKDIR /opt/quality_assets
COPY pyproject.toml README.md ./
COPY quality_assets ./quality_assets
RUN pip install --no-cache-dir .
ENV DAGSTER_HOME=/opt/dagster/home
COPY dagster.yaml workspace.yaml /opt/dagster/home/
