-- Hashtag popularity over a period: how often each hashtag arrived on the stream (one row of
-- hashtag_data per captured retweet and hashtag), how many distinct original tweets and authors
-- carried it. Hashtags are grouped case-insensitively (#Brexit = #brexit, as Twitter treats them)
-- and shown in their most frequent spelling. Period: [since, until) on time_stamp (arrival, UTC).
SELECT
  mode(hashtag) AS hashtag,
  count(*) AS mentions,
  count(DISTINCT tweet_id) AS tweets,
  count(DISTINCT user_name) AS users,
  min(time_stamp) AS first_seen,
  max(time_stamp) AS last_seen
FROM hashtags.hashtag_data
WHERE ($since IS NULL OR time_stamp >= $since) AND ($until IS NULL OR time_stamp < $until)
GROUP BY lower(hashtag)
ORDER BY mentions DESC, tweets DESC, hashtag
LIMIT $limit
