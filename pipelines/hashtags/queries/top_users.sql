-- The users behind the popular hashtags over a period: authors of the original tweets, by how
-- often their tweets arrived retweeted, with their distinct tweets and hashtags and mean polarity.
SELECT
  user_name,
  count(DISTINCT record_id) AS retweets_captured,
  count(DISTINCT tweet_id) AS tweets,
  count(DISTINCT lower(hashtag)) AS hashtags,
  max(rt_count) AS max_rt_count,
  avg(polarity) AS mean_polarity
FROM hashtags.hashtag_data
WHERE ($since IS NULL OR time_stamp >= $since) AND ($until IS NULL OR time_stamp < $until)
GROUP BY user_name
ORDER BY retweets_captured DESC, tweets DESC, user_name
LIMIT $limit
