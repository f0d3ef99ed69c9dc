-- Hashtag popularity over a period: how often each hashtag arrived on the stream (one row of
-- hashtag_data per captured retweet and hashtag), how many distinct original tweets and authors
-- carried it. Hashtags are grouped case-insensitively (#Brexit = #brexit, as Twitter treats them)
-- and shown in their most frequent spelling. Period: [since, until) on time_stamp (arrival, UTC).
WITH period AS (
  SELECT *
  FROM hashtags.hashtag_data
  WHERE ($since IS NULL OR time_stamp >= $since) AND ($until IS NULL OR time_stamp < $until)
),
-- The most frequent spelling of each hashtag (ties: the first in byte order). Window functions
-- rather than DuckDB's mode(), so the query is the same on Athena (Trino has no mode()).
spelling AS (
  SELECT tag, hashtag
  FROM (
    SELECT
      lower(hashtag) AS tag,
      hashtag,
      row_number() OVER (PARTITION BY lower(hashtag) ORDER BY count(*) DESC, hashtag) AS spelling_rank
    FROM period
    GROUP BY lower(hashtag), hashtag
  ) ranked
  WHERE spelling_rank = 1
)
SELECT
  s.hashtag,
  count(*) AS mentions,
  count(DISTINCT p.tweet_id) AS tweets,
  count(DISTINCT p.user_name) AS users,
  min(p.time_stamp) AS first_seen,
  max(p.time_stamp) AS last_seen
FROM period p
JOIN spelling s ON lower(p.hashtag) = s.tag
GROUP BY s.hashtag
ORDER BY mentions DESC, tweets DESC, s.hashtag
LIMIT $limit
