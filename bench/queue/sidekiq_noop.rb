# Peer for bench/queue: Sidekiq no-op jobs on the same Redis. The job records its
# enqueue-to-start latency only in the steady-rate phase (argument t > 0).
require "sidekiq"

class NoopJob
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(t)
    return if t.nil? || t <= 0
    lat = Time.now.to_f - t
    Sidekiq.redis { |r| r.rpush("bench:lat", lat.to_s) }
  end
end
