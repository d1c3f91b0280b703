"""Clients of the video platforms' documented upload protocols (YouTube Data API v3,
Facebook Graph API, Vimeo API v3 and v2), used by the video.upload.* tasks and the
``youtube`` store. Files are read from disk one chunk at a time; an interrupted chunk is
resumed from the offset the platform reports, not restarted.
"""
