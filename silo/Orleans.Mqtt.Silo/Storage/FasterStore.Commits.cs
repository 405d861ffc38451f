using FASTER.core;

namespace Orleans.Mqtt.Silo.Storage;

/// <summary>The group commit of <see cref="FasterStore"/>: writers wait for a commit, one loop syncs the write-ahead log for
/// all of them, and a full checkpoint runs periodically or when the log has grown long.</summary>
internal sealed partial class FasterStore
{
    /// <summary>
    /// Completes once a commit that started after this call has been written, so every change applied
    /// before the call is on disk.
    /// </summary>
    public Task WaitForCommitAsync()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            _pendingBatch ??= new CommitBatch();
            _pendingBatch.Count++;
            _wake.TrySetResult();
            return _pendingBatch.Completion;
        }
    }

    private void OnFullCheckpointDue()
    {
        lock (_gate)
        {
            _fullCheckpointDue = true;
            _wake.TrySetResult();
        }
    }

    private async Task RunCommitLoopAsync(CancellationToken stop)
    {
        try
        {
            while (true)
            {
                Task wake;
                lock (_gate)
                {
                    if (_pendingBatch is null && !(_fullCheckpointDue && _checkpoint.IsCompleted))
                    {
                        if (_wake.Task.IsCompleted)
                        {
                            _wake = NewCompletionSource();
                        }

                        wake = _wake.Task;
                    }
                    else
                    {
                        wake = Task.CompletedTask;
                    }
                }

                await wake.WaitAsync(stop).ConfigureAwait(false);

                var sinceLastCommit = _timeProvider.GetElapsedTime(_lastCommitStart);
                if (sinceLastCommit < _options.CommitInterval)
                {
                    await Task.Delay(_options.CommitInterval - sinceLastCommit, _timeProvider, stop).ConfigureAwait(false);
                }

                CommitBatch? batch;
                bool full;
                lock (_gate)
                {
                    batch = _pendingBatch;
                    _pendingBatch = null;

                    // One full checkpoint at a time; commits go on while it is written.
                    full = _fullCheckpointDue && _checkpoint.IsCompleted;
                    _fullCheckpointDue &= !full;
                }

                _lastCommitStart = _timeProvider.GetTimestamp();
                try
                {
                    if (full)
                    {
                        _checkpoint = FullCheckpointAsync(batch);
                        _ = _checkpoint.ContinueWith(
                            static (checkpoint, state) => ((FasterStore)state!).OnCheckpointEnded(checkpoint),
                            this,
                            CancellationToken.None,
                            TaskContinuationOptions.ExecuteSynchronously,
                            TaskScheduler.Default);
                    }
                    else if (batch is not null)
                    {
                        Commit(batch);
                    }
                }
                catch (Exception exception)
                {
                    LogCheckpointFailed(_logger, exception, _directory);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Closing.
        }
    }

    private void OnCheckpointEnded(Task checkpoint)
    {
        if (checkpoint.Exception is { } exception)
        {
            LogCheckpointFailed(_logger, exception.GetBaseException(), _directory);
        }

        lock (_gate)
        {
            _wake.TrySetResult();
        }
    }

    /// <summary>Writes and syncs the write-ahead log, then completes the batch; asks for a full checkpoint when the log is long.</summary>
    private void Commit(CommitBatch batch)
    {
        var started = _timeProvider.GetTimestamp();
        try
        {
            _log.Flush();
        }
        catch (Exception exception)
        {
            batch.Fail(exception);
            throw;
        }

        var elapsed = _timeProvider.GetElapsedTime(started);
        Interlocked.Increment(ref _commitCount);
        batch.Complete();
        LogCommitted(_logger, batch.Count, elapsed.TotalMilliseconds);
        if (_log.SegmentLength >= _logBytesBeforeCheckpoint)
        {
            OnFullCheckpointDue();
        }
    }

    /// <summary>
    /// Cuts the write-ahead log (which makes <paramref name="batch"/> durable and completes it), takes a full
    /// checkpoint and deletes the log segments before the cut. Skipped when nothing changed since the last one,
    /// unless <paramref name="force"/>d or someone waits.
    /// </summary>
    private async Task FullCheckpointAsync(CommitBatch? batch, bool force = false)
    {
        var store = _store!;

        // Changes made from here on may or may not make it into this checkpoint, so they count for the next one.
        if (Interlocked.Exchange(ref _changesSinceFullCheckpoint, 0) == 0 && batch is null && !force)
        {
            return;
        }

        var started = _timeProvider.GetTimestamp();
        long cut;
        try
        {
            // Every change applied before this point is in the log before the cut and in the checkpoint; a change
            // applied after it is in the log after the cut (it may be in the checkpoint too: replaying it is harmless).
            cut = _log.Cut();
        }
        catch (Exception exception)
        {
            Interlocked.Increment(ref _changesSinceFullCheckpoint);
            batch?.Fail(exception);
            throw;
        }

        batch?.Complete();
        var tail = store.Log.TailAddress;
        while (true)
        {
            (bool success, Guid token) result;
            try
            {
                result = await store.TakeFullCheckpointAsync(CheckpointType.Snapshot).ConfigureAwait(false);
            }
            catch
            {
                Interlocked.Increment(ref _changesSinceFullCheckpoint);
                throw;
            }

            var (success, token) = result;
            if (success)
            {
                _log.DeleteBefore(cut);
                var elapsed = _timeProvider.GetElapsedTime(started);
                Interlocked.Increment(ref _commitCount);
                Interlocked.Increment(ref _fullCheckpointCount);
                LogFullCheckpoint(_logger, token, store.CurrentVersion, tail, elapsed.TotalMilliseconds);
                return;
            }

            await store.CompleteCheckpointAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The writers waiting for one commit. They are released by one thread pool work item that runs their
    /// continuations one after the other, not by one work item each (what a completion source that runs continuations
    /// asynchronously queues): each waiter's continuation is short (it completes a grain storage or replica write,
    /// whose own awaiter then goes back to its grain's scheduler), and every work item can wake a sleeping thread. The
    /// commit loop itself never runs them, so a slow continuation cannot hold up the next commit.
    /// </summary>
    private sealed class CommitBatch
    {
        // Continuations run where the completion runs: on the work item below, never on the commit loop.
        private readonly TaskCompletionSource _completion = new();

        public Task Completion => _completion.Task;

        public int Count { get; set; }

        public void Complete() =>
            ThreadPool.UnsafeQueueUserWorkItem(static completion => completion.TrySetResult(), _completion, preferLocal: false);

        public void Fail(Exception exception) =>
            ThreadPool.UnsafeQueueUserWorkItem(static state => state.Completion.TrySetException(state.Exception), (Completion: _completion, Exception: exception), preferLocal: false);
    }
}
