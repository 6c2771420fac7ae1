// File: job_queue.h
//
// A fixed pool of worker threads running jobs in the order they were queued: the slow work of
// the sandbox manager (image pulls, sbx-runtime, teardown) off the request path.

#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sbx::daemon {

class JobQueue {
 public:
  JobQueue() = default;
  ~JobQueue() { Stop(); }
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  void Start(int workers) {
    std::lock_guard lock(mu_);
    stopping_ = false;
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
  }

  // Queued jobs still run; a job queued after Stop began is dropped.
  void Stop() {
    std::vector<std::thread> workers;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      workers.swap(workers_);
    }
    ready_.notify_all();
    for (auto& t : workers) t.join();
  }

  // False when the queue is stopping and the job was dropped.
  bool Enqueue(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      if (stopping_ && workers_.empty()) return false;
      jobs_.push_back(std::move(job));
    }
    ready_.notify_one();
    return true;
  }

  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

 private:
  void Work() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
};

}  // namespace sbx::daemon
