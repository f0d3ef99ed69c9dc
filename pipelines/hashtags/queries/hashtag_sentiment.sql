-- Sentiment per hashtag over a period: mean polarity (-1..1) and subjectivity (0..1) of the texts
-- that carried it (VADER, see pipelines/hashtags/README.md), weighted by arrivals, with the share
-- of positive (> 0.05) and negative (< -0.05) texts (VADER's recommended thresholds).
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
  avg(p.polarity) AS mean_polarity,
  avg(p.subjectivity) AS mean_subjectivity,
  avg(CASE WHEN p.polarity > 0.05 THEN 1.0 ELSE 0.0 END) AS positive_share,
  avg(CASE WHEN p.polarity < -0.05 THEN 1.0 ELSE 0.0 END) AS negative_share
FROM period p
JOIN spelling s ON lower(p.hashtag) = s.tag
GROUP BY s.hashtag
ORDER BY mentions DESC, s.hashtag
LIMIT $limit
