"""video.upload.youtube, video.upload.fb and video.upload.vimeo (spec: Tasks Reference).

The source is fetched to the scratch directory, checked to be a video (its duration is
an output), then uploaded with the platform's resumable protocol (dragon/platforms/).
Credentials are parameters: ``details`` shows them redacted, and error messages are
scrubbed of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dragon.media.video.probe import probe
from dragon.platforms import facebook, vimeo, youtube
from dragon.registry import Resources, TaskContext, TaskParams, task
from dragon.tasks.fields import Description, InputUrl, Title

MAX_INPUT_BYTES = 4 * 1024**3
UPLOAD = Resources(cpus=0.25, memory_mb=256)


def _source(ctx: TaskContext, url: str) -> tuple[Path, float]:
    path = ctx.fetch(url, MAX_INPUT_BYTES).path
    return path, round(probe(path).duration, 3)


def _progress(ctx: TaskContext) -> Callable[[float], None]:
    """Upload progress (0..1) as the task's progress in percent."""
    return lambda done: ctx.progress(round(100 * done))


class YouTubeParams(TaskParams):
    url: InputUrl
    access_token: str = Field(min_length=1, description="OAuth2 access token of the YouTube channel.")
    developer_key: str = Field(min_length=1, description="API key of the Google project.")
    title: Title = Field(min_length=1, max_length=100)
    description: Description = Field(default="", max_length=5000)
    tags: list[str] = Field(default=[], description="Keywords of the video.")
    category_id: int = Field(default=22, description="YouTube category id (22: People & Blogs).")
    privacy_status: Literal["public", "private", "unlisted"] = Field(default="public", description="Who can watch it.")


@task("video.upload.youtube", YouTubeParams, resources=UPLOAD, values=("output", "duration"))
def upload_youtube(ctx: TaskContext, params: YouTubeParams) -> dict:
    """``output`` is the video's watch URL."""
    path, duration = _source(ctx, params.url)
    meta = youtube.Metadata(params.title, params.description, params.tags, params.category_id, params.privacy_status)
    url = youtube.upload(path, meta, params.access_token, params.developer_key, ctx.settings, _progress(ctx))
    return {"output": url, "duration": duration}


class FacebookParams(TaskParams):
    url: InputUrl
    access_token: str = Field(min_length=1, description="Access token of the user or page that publishes.")
    title: Title = ""
    description: Description = ""
    privacy: Literal["AUTO", "EVERYONE", "ALL_FRIENDS", "FRIENDS_OF_FRIENDS", "SELF"] = Field(
        default="AUTO", description="Who can watch it (AUTO: the app's default)."
    )
    no_story: bool = Field(default=False, description="Publish without a story in the feed.")
    api_key: str = Field(default="-", description="Accepted and unused: the Graph API knows the app by its token.")
    app_secret: str = Field(
        default="-", description="The app's secret, to sign each call (appsecret_proof); '-': none."
    )


@task("video.upload.fb", FacebookParams, resources=UPLOAD, values=("duration", "output"))
def upload_facebook(ctx: TaskContext, params: FacebookParams) -> dict:
    """``output`` is the video's URL on Facebook; ``app_secret`` (when not "-") signs each
    call with ``appsecret_proof``. ``api_key`` is accepted and unused: the Graph API
    identifies the app by its token."""
    path, duration = _source(ctx, params.url)
    url = facebook.upload(
        path,
        params.title,
        params.description,
        params.privacy,
        params.no_story,
        params.access_token,
        params.app_secret,
        ctx.settings,
        _progress(ctx),
    )
    return {"duration": duration, "output": url}


class VimeoParams(TaskParams):
    url: InputUrl
    title: Title = ""
    description: Description = ""
    consumer_key: str | None = Field(default=None, description="OAuth1 consumer key (API v2), with the three below.")
    consumer_secret: str | None = Field(default=None, description="OAuth1 consumer secret.")
    access_token_key: str | None = Field(default=None, description="OAuth1 access token.")
    access_token_secret: str | None = Field(default=None, description="OAuth1 access token secret.")
    oauth2_token: str | None = Field(default=None, description="OAuth2 token (API v3, tus uploads): used when given.")

    @model_validator(mode="after")
    def _credentials(self) -> VimeoParams:
        oauth1 = (self.consumer_key, self.consumer_secret, self.access_token_key, self.access_token_secret)
        if not self.oauth2_token and not all(oauth1):
            raise ValueError(
                "give oauth2_token, or consumer_key, consumer_secret, access_token_key and access_token_secret"
            )
        return self


@task(
    "video.upload.vimeo",
    VimeoParams,
    resources=UPLOAD,
    values=("free_space", "uploaded_file_size", "output", "duration"),
)
def upload_vimeo(ctx: TaskContext, params: VimeoParams) -> dict:
    """OAuth2 (``oauth2_token``, API v3, tus) when given, else OAuth1 (API v2).
    ``free_space`` is the account's upload space left after the upload, in bytes."""
    path, duration = _source(ctx, params.url)
    if params.oauth2_token:
        done = vimeo.upload_v3(
            path, params.title, params.description, params.oauth2_token, ctx.settings, _progress(ctx)
        )
    else:
        credentials = vimeo.OAuth1(
            params.consumer_key or "",
            params.consumer_secret or "",
            params.access_token_key or "",
            params.access_token_secret or "",
        )
        done = vimeo.upload_v2(path, params.title, params.description, credentials, ctx.settings, _progress(ctx))
    return {"free_space": done.free_space, "uploaded_file_size": done.size, "output": done.url, "duration": duration}
