# One image for every Python process of the platform; docker-compose.yml picks the command.
FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --system --create-home --uid 10001 app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY runtime ./runtime
COPY http_api ./http_api
COPY consuming ./consuming
COPY event_store ./event_store
COPY command_api ./command_api
COPY query_api ./query_api
COPY projector ./projector
COPY scheduler ./scheduler
COPY mailer ./mailer
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-cache-dir .
USER app
# Overridden per service in docker-compose.yml.
CMD ["python", "-m", "command_api"]
