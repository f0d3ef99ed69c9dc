-- Sentiment per hashtag over a period: mean polarity (-1..1) and subjectivity (0..1) of the texts
-- that carried it (VADER, see pipelines/hashtags/README.md), weighted by arrivals, with the share
-- of positive (> 0.05) and negative (< -0.05) texts (VADER's recommended thresholds).
SELECT
  mode(hashtag) AS hashtag,
  count(*) AS mentions,
  avg(polarity) AS mean_polarity,
  avg(subjectivity) AS mean_subjectivity,
  avg(CASE WHEN polarity > 0.05 THEN 1.0 ELSE 0.0 END) AS positive_share,
  avg(CASE WHEN polarity < -0.05 THEN 1.0 ELSE 0.0 END) AS negative_share
FROM hashtags.hashtag_data
WHERE ($since IS NULL OR time_stamp >= $since) AND ($until IS NULL OR time_stamp < $until)
GROUP BY lower(hashtag)
ORDER BY mentions DESC, hashtag
LIMIT $limit
